import torch

def train(model, optimizer, sched, loader):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        sched.step()
        optimizer.step()
