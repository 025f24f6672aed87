import torch
device = "cuda"
w = torch.randn(3, requires_grad=True). to(device)
