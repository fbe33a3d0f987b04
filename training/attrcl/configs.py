"""AttrCL's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch."""

CONFIGS = {
    # CPU-sized: frames resized to 56x56
    "tiny": {"size": 56, "epochs": 3, "batch": 8, "lr": 1e-3, "alpha": 0.3, "seed": 0, "runs": 5},
    # the paper: Adam 1e-4, batch 32, 200 iterations, 112x112
    "paper": {
        "size": 112,
        "iterations": 200,
        "epochs": None,
        "batch": 32,
        "lr": 1e-4,
        "alpha": 0.3,
        "seed": 0,
        "runs": 5,
    },
}
