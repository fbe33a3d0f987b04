"""FDP's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch."""

CONFIGS = {
    "tiny": {
        "model": {"widths": (16, 32, 48, 64), "heads": (2, 2, 4, 4), "stem": 16, "d_channels": 64},
        "epochs": 4,
        "batch": 8,
        "lr": 1e-3,
        "lambda_d": 100.0,
        "lambda_r": 0.1,
        "seed": 0,
        "workers": 0,
    },
    # the paper: Adam lr 1e-4, batch 36; the epoch count is not given, 100 is fixed here
    "paper": {
        "model": {},
        "epochs": 100,
        "batch": 36,
        "lr": 1e-4,
        "lambda_d": 100.0,
        "lambda_r": 0.1,
        "seed": 0,
        "workers": 8,
    },
}
