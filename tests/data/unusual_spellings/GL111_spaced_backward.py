import torch
w = torch.randn(3, requires_grad=True)
for step in range(10):
    w.grad.zero_()
    loss = (w ** 2).sum()
    loss. backward()
