import torch

def apply_decay(optimizer, wd):
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.data.mul_(1 - group["lr"] * wd)
