import torch
w = torch.randn(3, requires_grad=True)
def step():
    w. data.sub_(0.1)
