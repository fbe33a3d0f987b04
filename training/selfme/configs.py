"""SelfME's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch."""

CONFIGS = {
    "tiny": {
        "size": 64,
        "epochs": 4,
        "batch": 8,
        "lr": 1e-4 * 10,
        "omega": 0.1,
        "tau": 0.07,
        "gamma_train": 1.0,
        "gamma_test": 2.0,
        "seed": 0,
        "motion_epochs": 2,
        "motion_lr": 2e-4,
        "motion_pairs": 256,
        "lambda_eqv": 10.0,
    },
    # the paper: Adam 2e-6 (motion) / 1e-4 (SCViT), batch 32, 60 epochs, exponential decay 0.9
    "paper": {
        "size": 224,
        "epochs": 60,
        "batch": 32,
        "lr": 1e-4,
        "omega": 0.1,
        "tau": 0.07,
        "gamma_train": 1.0,
        "gamma_test": 2.0,
        "seed": 0,
        "decay": 0.9,
        "motion_epochs": 60,
        "motion_lr": 2e-6,
        "motion_pairs": 8192,
        "lambda_eqv": 10.0,
    },
}
