"""Organizers: check a face-age checkpoint against the contest's parameter cap.

    nsml model pull USER/face-age/N CKPT ./ckpt
    python tasks/face-age/check_params.py ./ckpt [--max 12000000]

Counts the elements of every tensor in every torch file (*.pt, *.pth, *.bin, or a bare `model`) of the
checkpoint folder — the participant's saved weights — and exits 1 when the total is over the cap.
"""
import argparse
import sys
from pathlib import Path


def count(folder: Path) -> int:
    import torch

    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix not in (".pt", ".pth", ".bin") and path.name != "model":
            continue
        state = torch.load(path, map_location="cpu", weights_only=False)
        stack = [state]
        while stack:
            item = stack.pop()
            if isinstance(item, torch.Tensor):
                total += item.numel()
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
            elif isinstance(item, torch.nn.Module):
                total += sum(p.numel() for p in item.state_dict().values())
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--max", type=int, default=12_000_000)
    args = parser.parse_args()
    n = count(args.checkpoint)
    verdict = "within" if n <= args.max else "OVER"
    print(f"{n} parameters: {verdict} the cap of {args.max}")
    sys.exit(0 if n <= args.max else 1)


if __name__ == "__main__":
    main()
