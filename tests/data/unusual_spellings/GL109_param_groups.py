import torch

def train(model, opt, loader):
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        for group in opt.param_groups:
            for p in group["params"]:
                p -= group["lr"] * p.grad
