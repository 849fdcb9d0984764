"""service: the public library API, which the CLI (and the HTTP server) call. sessions, submits,
checkpoints (models), boards (boards and history), tasks (dataset admin), contests (organizer commands),
quick_reads (the fast `ps`/`board` reads), check (`nsml check`) — and permissions, the one place identity and
rights are checked.
May import: contest, context and every floor below.
"""
