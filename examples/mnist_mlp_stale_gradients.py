"""MNIST-style MLP classifier on synthetic 28x28 digits; the loop forgets to reset gradients
between batches."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)

# Synthetic stand-in for MNIST: 96 grayscale 28x28 images, 10 classes.
images = torch.rand(96, 1, 28, 28)
digits = torch.randint(0, 10, (96,))
train_loader = DataLoader(TensorDataset(images, digits), batch_size=16, shuffle=True)

model = nn.Sequential(
    nn.Flatten(),
    nn.Linear(28 * 28, 128),
    nn.ReLU(),
    nn.Linear(128, 10),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(2):
    model.train()
    total_loss, correct = 0.0, 0
    for batch, target in train_loader:
        output = model(batch)
        loss = criterion(output, target)
        # Bug: no optimizer.zero_grad() anywhere, so this backward adds onto the
        # gradient that the previous optimizer.step() already applied.
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * batch.size(0)
        correct += (output.argmax(dim=1) == target).sum().item()
    n = len(train_loader.dataset)
    print(f"epoch {epoch}: loss {total_loss / n:.4f} accuracy {correct / n:.2%}")
