import torch
w = torch.randn(3, requires_grad=True)
def train():
    loss = (w ** 2).sum()
    loss.backward \
        ()
    print(loss.data.item())
