"""Which autoregressive decoder reaches the lower R = 0 distortion per CPU-minute: the conditional
MADE (the broken-elbo cpu scale's complex decoder) or a narrow PixelCNN++ (the paper's kind).

Each candidate is trained as a VAE at beta = 1 without KL annealing (its family "-+-" with the
given sizes; such decoders drop the code, so -ELBO is the decoder's own NLL, D at R = 0) on static
binarized MNIST for the same CPU time, one thread, and evaluated on the first `--valid` validation
images at fixed times. Run the candidates side by side (one process each) for equal load:

    python benchmarks/ar_decoders.py --decoder made --minutes 6 --evaluations 6 &
    python benchmarks/ar_decoders.py --decoder pixelcnn16 --minutes 6 --evaluations 6 &
    python benchmarks/ar_decoders.py --decoder pixelcnn8 --minutes 6 --evaluations 6

Prints one markdown row per evaluation (minutes of training, steps, validation R, D, -ELBO);
docs/results/broken-elbo.md quotes one run.
"""

from __future__ import annotations

import argparse
import time

import torch

from rdvae.data import load_dataset
from rdvae.evaluate import evaluate_model
from rdvae.presets import build_model, register_family

# the conditional-MADE decoder's family, registered here as a user's file would
register_family("mlp-made", "mlp", "made", "-", 64, "MLP encoder, conditional-MADE decoder, N(0, I) marginal",
                replace=True)
CANDIDATES = {
    # MLP encoder, MADE 784-500-500-784 with z into every layer
    "made": ("mlp-made", {"hidden": [512, 256], "activation": "relu", "decoder_hidden": [500, 500]}),
    # the previous cpu scale's model: quarter-width conv encoder, PixelCNN++ 16 channels, 3 levels
    "pixelcnn16": ("-+-", {"conv_width": 0.25, "pixelcnn_channels": 16, "pixelcnn_levels": 3,
                           "pixelcnn_resnet_layers": 1}),
    # the cpu scale's "-+-": MLP encoder, PixelCNN++ 8 channels, 3 levels
    "pixelcnn8": ("mlp-+-", {"hidden": [512, 256], "activation": "relu", "pixelcnn_channels": 8,
                             "pixelcnn_levels": 3, "pixelcnn_resnet_layers": 1}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", choices=sorted(CANDIDATES), required=True, help="the candidate to train")
    parser.add_argument("--minutes", type=float, default=6.0, help="CPU minutes of training (default 6)")
    parser.add_argument("--evaluations", type=int, default=6, help="evaluations, evenly spaced in time")
    parser.add_argument("--valid", type=int, default=2000, help="validation images evaluated (default 2000)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch (default 128)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("binarized-mnist", binarize=None)
    train, valid = data.split("train"), data.split("valid")[: args.valid]
    family, options = CANDIDATES[args.decoder]
    model = build_model(family, data.event_shape, 64, **options)
    model.marginal.initialize_from_data(train)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    budget, spent, steps = 60 * args.minutes, 0.0, 0
    marks = [budget * (k + 1) / args.evaluations for k in range(args.evaluations)]
    generator = torch.Generator().manual_seed(1)
    print("| decoder | parameters | CPU minutes | steps | valid R | valid D | valid -ELBO |\n"
          "|---|---|---|---|---|---|---|",
          flush=True)
    while marks:
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train) - args.batch_size + 1, args.batch_size):
            began = time.process_time()
            model.train()
            out = model(train[order[start:start + args.batch_size]])
            loss = (out.distortion + out.rate).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            spent += time.process_time() - began
            steps += 1
            if spent >= marks[0]:
                marks.pop(0)
                result = evaluate_model(model, valid, batch_size=500, diagnostics=False)
                print(f"| {args.decoder} | {model.num_parameters()} | {spent / 60:.1f} | {steps} | "
                      f"{result['rate']:.2f} | {result['distortion']:.2f} | {-result['elbo']:.2f} |",
                      flush=True)
                if not marks:
                    break


if __name__ == "__main__":
    main()
