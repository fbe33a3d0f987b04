"""MicroAUCLIP's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch."""

CONFIGS = {
    "tiny": {
        "epochs": 2,
        "batch": 4,
        "lr_enc": 1e-3,
        "lr_other": 1e-2,
        "alpha": 1.0,
        "beta": 1.0,
        "seed": 0,
        "aus": "default",
    },
    # the paper: SGD, lr 0.001 (encoders) / 0.01 (others), 80 epochs, batch 8, /10 at epoch 40
    "paper": {
        "epochs": 80,
        "batch": 8,
        "lr_enc": 1e-3,
        "lr_other": 1e-2,
        "alpha": 1.0,
        "beta": 1.0,
        "seed": 1,
        "aus": "default",
        "step": 40,
    },
}
