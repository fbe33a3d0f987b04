"""MicroAUCLIP's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch.

The AU set and the loss weights alpha / beta (eq. 12) are not here: the paper chose them per
dataset, so they come from the dataset trained on (training/microauclip/settings.py)."""

CONFIGS = {
    "tiny": {
        "epochs": 2,
        "batch": 4,
        "lr_enc": 1e-3,
        "lr_other": 1e-2,
        "seed": 0,
    },
    # the paper: SGD, lr 0.001 (encoders) / 0.01 (others), 80 epochs, batch 8, /10 at epoch 40
    "paper": {
        "epochs": 80,
        "batch": 8,
        "lr_enc": 1e-3,
        "lr_other": 1e-2,
        "seed": 1,
        "step": 40,
    },
}
