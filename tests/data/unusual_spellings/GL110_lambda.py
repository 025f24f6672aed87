import torch
make = lambda: torch.ones(3, requires_grad=True).cuda()
w = torch.ones(3).requires_grad_().cuda()
