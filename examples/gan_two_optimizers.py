"""A small GAN learning a 2-D Gaussian, with one optimizer per network, each reset once before its
own update."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
latent_dim = 8

real_data = torch.randn(96, 2) * torch.tensor([0.5, 1.5]) + torch.tensor([2.0, -1.0])
loader = DataLoader(TensorDataset(real_data), batch_size=16, shuffle=True)

generator = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, 2))
discriminator = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
adversarial_loss = nn.BCEWithLogitsLoss()

for epoch in range(2):
    for (real,) in loader:
        valid = torch.ones(real.size(0), 1)
        fake_label = torch.zeros(real.size(0), 1)
        fake = generator(torch.randn(real.size(0), latent_dim))

        # Discriminator: detach the fake batch so this loss does not reach the generator.
        optimizer_d.zero_grad()
        real_loss = adversarial_loss(discriminator(real), valid)
        fake_loss = adversarial_loss(discriminator(fake.detach()), fake_label)
        d_loss = real_loss + fake_loss
        d_loss.backward()
        optimizer_d.step()

        # Generator: this backward also fills the discriminator's .grad, which the
        # next optimizer_d.zero_grad() clears before the discriminator's own update.
        optimizer_g.zero_grad()
        g_loss = adversarial_loss(discriminator(fake), valid)
        g_loss.backward()
        optimizer_g.step()
    print(f"epoch {epoch}: d_loss {d_loss.item():.4f} g_loss {g_loss.item():.4f}")
