import torch
class Cfg:
    w = torch.ones(3, requires_grad=True).cuda()
