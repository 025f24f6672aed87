import torch
w: torch.Tensor = torch.ones(3, requires_grad=True).cuda()
