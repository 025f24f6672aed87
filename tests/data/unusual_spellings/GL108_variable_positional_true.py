import torch
from torch.autograd import Variable

w = Variable(torch.randn(3, 3), True)
def project():
    w.data.clamp_(min=0)
