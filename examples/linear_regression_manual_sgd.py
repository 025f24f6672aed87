"""Linear regression with hand-written gradient descent on w and b, missing the gradient reset
between iterations."""
import torch

torch.manual_seed(0)
lr = 0.01

# y = 2x + 5 plus noise
x = torch.rand(20, 1) * 10
y = 2 * x + (5 + torch.randn(20, 1))

w = torch.randn((1), requires_grad=True)
b = torch.zeros((1), requires_grad=True)

for iteration in range(6):
    y_pred = torch.add(torch.mul(w, x), b)
    loss = (0.5 * (y - y_pred) ** 2).mean()

    # Bug: w.grad and b.grad are never cleared, so this backward adds the new
    # gradient onto the one already used in the previous update.
    loss.backward()

    b.data.sub_(lr * b.grad)
    w.data.sub_(lr * w.grad)
    print(f"iteration {iteration}: loss {loss.item():.3f} w.grad {w.grad.item():.2f}")
