"""DVSCL's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch."""

CONFIGS = {
    # a few minutes on a laptop CPU
    "tiny": {
        "size": 64,
        "batch": 16,
        "epochs": 3,
        "lr": 0.03,
        "momentum": 0.9,
        "wd": 1e-4,
        "tau": 0.07,
        "dim": 128,
        "probe": "lbfgs",  # run to convergence (see train_probe); "adam" uses probe_epochs/probe_lr
        "probe_c": 1.0,
        "probe_epochs": 300,
        "probe_lr": 0.01,
        "oversample": "half",
        "workers": 0,
        "depth_scale": 50.0,
        "seed": 0,
    },
    # the paper's hyper-parameters (sec. 5.1): 240 epochs, SGD 0.003 cosine, batch 128
    "paper": {
        "size": 224,
        "batch": 128,
        "epochs": 240,
        "lr": 0.003,
        "momentum": 0.9,
        "wd": 1e-4,
        "tau": 0.07,
        "dim": 128,
        "probe": "lbfgs",  # the paper's 100 Adam steps at 1e-4 do not converge: probe "adam" keeps them
        "probe_c": 1.0,
        "probe_epochs": 100,
        "probe_lr": 1e-4,
        "oversample": "half",
        "workers": 8,
        "depth_scale": 50.0,
        "seed": 0,
    },
}
