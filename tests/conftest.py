import pgsom  # noqa: F401  (first: sets the portable numerics mode before numpy and torch load)
import torch

torch.set_num_threads(1)
