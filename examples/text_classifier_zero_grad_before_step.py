"""A 1-D CNN text classifier whose zero_grad() ended up between backward() and step(), so the model
never learns."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class ConvTextClassifier(nn.Module):
    def __init__(self, vocab_size=100, dim=16, num_classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.conv = nn.Conv1d(dim, 24, kernel_size=3, padding=1)
        self.fc = nn.Linear(24, num_classes)

    def forward(self, tokens):
        h = self.conv(self.embedding(tokens).transpose(1, 2)).relu()
        return self.fc(h.amax(dim=2))


torch.manual_seed(0)
reviews = TensorDataset(torch.randint(0, 100, (48, 15)), torch.randint(0, 3, (48,)))
loader = DataLoader(reviews, batch_size=8)
net = ConvTextClassifier()
opt = torch.optim.Adam(net.parameters(), lr=1e-3)

for epoch in range(2):
    for tokens, labels in loader:
        loss = nn.functional.cross_entropy(net(tokens), labels)
        loss.backward()
        # Bug: this clears the gradient that opt.step() is about to use.
        opt.zero_grad()
        opt.step()
    print(f"epoch {epoch}: {loss.item():.4f}")
