import torch
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
total = 0
for x, y in loader:
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    (loss.backward)()
    opt.step()
    total += loss
