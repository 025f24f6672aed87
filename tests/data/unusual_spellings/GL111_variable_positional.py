import torch
from torch.autograd import Variable
w = Variable(torch.randn(3), True)
for step in range(10):
    w.grad.zero_()
    loss = (w ** 2).sum()
    loss.backward()
