"""Sentiment classifier with gradient accumulation that is silently defeated by a zero_grad() on
every micro-batch."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class BagOfWords(nn.Module):
    def __init__(self, vocab_size=200, dim=32, num_classes=2):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, tokens):
        return self.classifier(self.embedding(tokens))


def train(model, loader, optimizer, accumulation_steps=3, epochs=2):
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        for step, (tokens, labels) in enumerate(loader):
            # Bug: resetting here throws away the micro-batches accumulated since
            # the last optimizer.step(); each step only sees the last micro-batch.
            optimizer.zero_grad()
            loss = criterion(model(tokens), labels) / accumulation_steps
            loss.backward()
            if (step + 1) % accumulation_steps == 0:
                optimizer.step()
        print(f"epoch {epoch}: last micro-batch loss {loss.item() * accumulation_steps:.4f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    tokens = torch.randint(0, 200, (48, 20))
    labels = torch.randint(0, 2, (48,))
    loader = DataLoader(TensorDataset(tokens, labels), batch_size=8, shuffle=True)
    model = BagOfWords()
    train(model, loader, torch.optim.Adam(model.parameters(), lr=1e-3))
