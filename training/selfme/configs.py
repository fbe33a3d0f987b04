"""SelfME's configurations: 'tiny' runs in minutes on a laptop CPU; 'paper' has the paper's
hyper-parameters (for a GPU). Data only: the CLI reads the names without importing torch.

The motion learner's Adam rate depends on where it starts (train.motion_rate):
`motion_lr_finetune` when every tensor of it comes from --motion-weights: the paper's
2e-6 fine-tunes a learner pretrained on VoxCeleb (its section 4.3); `motion_lr_scratch`
for a randomly initialised learner: 2e-4, the rate at which first-order-motion (Siarohin
et al. 2019, whose learner SelfME's follows) trains its keypoint detector and generator
from scratch (config/vox-256.yaml: lr_kp_detector = lr_generator = 2e-4); at 2e-6 a
random learner would barely move from its initialisation. 'tiny' scales the fine-tuning rate
by 10."""

CONFIGS = {
    "tiny": {
        "size": 64,
        "epochs": 4,
        "batch": 8,
        "lr": 3e-4,  # eq. 15's MLP head: learns a planted signal at 3e-4 on 3 of 4 seeds, at 1e-3 on 1 of 3
        "omega": 0.1,
        "tau": 0.07,
        "gamma_train": 1.0,
        "gamma_test": 2.0,
        "seed": 0,
        "motion_epochs": 2,
        "motion_lr_finetune": 2e-6 * 10,
        "motion_lr_scratch": 2e-4,
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
        "motion_milestones": [20, 30],  # sec. 4.3: the motion learner's rate / 10 at epochs 20 and 30
        "motion_lr_finetune": 2e-6,
        "motion_lr_scratch": 2e-4,
        "motion_pairs": 8192,
        "lambda_eqv": 10.0,
    },
}
