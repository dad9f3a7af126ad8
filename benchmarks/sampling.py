"""The cached sampler against the naive one: images per second, 28x28 binarised MNIST.

    python -m benchmarks.sampling                     # CPU: batch 100
    python -m benchmarks.sampling --device cuda --batch 1000

The naive sampler makes one full decoder pass per pixel; where a whole image would take too
long (``--naive-rows``), it is timed over its first rows and scaled to 28 rows, which is
exact for its cost (every pass costs the same) and is said in the table.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import model_config, timed, write_table
from pixelgan.model import PixelGAN
from pixelgan.sampling import sample, sample_naive


def naive_rows(model: PixelGAN, z: torch.Tensor, rows: int) -> None:
    """The naive sampler's passes for the first ``rows`` rows (each pass costs the same)."""
    x = torch.zeros(len(z), 1, 28, 28, device=z.device)
    for _ in range(rows * 28):
        model.decoder(x, z)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sampling", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="images a call (default: 100 on CPU, 1000 on GPU)")
    parser.add_argument("--naive-rows", type=int, default=2, help="rows the naive sampler is timed over")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batch = args.batch or (1000 if device.type == "cuda" else 100)
    rows = []
    for profile in ("cpu", "paper"):
        torch.manual_seed(0)
        model = PixelGAN(model_config(profile)).to(device).eval()
        z = model.prior.sample(batch, device=device)
        with torch.no_grad():
            naive = timed(lambda: naive_rows(model, z, args.naive_rows), device) * 28 / args.naive_rows
            cached = timed(lambda: sample(model.decoder, z), device)
        d = model.config.decoder
        rows.append([profile, f"{d.n_layers}x{d.channels}", batch, batch / naive, batch / cached, naive / cached])
    check = PixelGAN(model_config("cpu")).to(device).eval()
    z = check.prior.sample(4, device=device)
    same = torch.equal(sample_naive(check.decoder, z, torch.Generator(device).manual_seed(0)),
                       sample(check.decoder, z, torch.Generator(device).manual_seed(0)))
    write_table(
        "sampling", device,
        ["profile", "decoder (layers x channels)", "batch", "naive images/s", "cached images/s", "speed-up"],
        rows,
        [f"naive: timed over {args.naive_rows} of 28 rows and scaled to the whole image",
         f"same images from both samplers for one seed (CPU decoder, 4 images): {same}"],
    )


if __name__ == "__main__":
    main()
