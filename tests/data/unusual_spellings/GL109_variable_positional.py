import torch
from torch.autograd import Variable

w = Variable(torch.randn(3), True)
for x, y in data:
    loss = ((x @ w - y) ** 2).mean()
    loss.backward()
    w -= 0.1 * w.grad
    w.grad.zero_()
