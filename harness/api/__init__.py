"""The API's operations, each declared once (operations.py: name, typed arguments with their bounds, the right it
needs, HTTP verb and path, how its result travels), and `Api`, the base class made from them. The local
implementation (service.local), the HTTP client (client), the server's routes (server.derived), the OpenAPI
document, the permission matrix test and the CLI reference are derived from these declarations.

May import: core. Plain dataclasses and typing only (the CLI loads this on every command): no pydantic, no
database library.
"""
from .contract import Api
from .declare import Arg, Kind, Operation, Paging, Right
from .operations import LOCAL_COMMANDS, OPERATIONS

__all__ = ["Api", "Arg", "Kind", "LOCAL_COMMANDS", "OPERATIONS", "Operation", "Paging", "Right"]
