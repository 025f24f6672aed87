import torch
device = "cuda"
w = torch.randn(3, requires_grad=True)
w = w.to(device)
for x, y in data:
    loss = ((x @ w - y) ** 2).mean()
    loss.backward()
