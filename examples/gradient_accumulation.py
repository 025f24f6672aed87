"""Regression with gradient accumulation done right: step and reset together every few
micro-batches and on the last one."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)

features = torch.randn(48, 12)
targets = features @ torch.randn(12, 1) + 0.1 * torch.randn(48, 1)
loader = DataLoader(TensorDataset(features, targets), batch_size=8)  # 6 micro-batches

model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
criterion = nn.MSELoss()
accumulation_steps = 4

for epoch in range(2):
    for step, (x, y) in enumerate(loader):
        loss = criterion(model(x), y) / accumulation_steps
        loss.backward()
        # Step once per accumulation window; the last, shorter window steps too.
        if (step + 1) % accumulation_steps == 0 or step + 1 == len(loader):
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            optimizer.zero_grad()
    print(f"epoch {epoch}: loss {loss.item() * accumulation_steps:.4f}")
