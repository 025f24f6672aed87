import torch
class Lit(LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3))
    def training_step(self, batch, i):
        loss = (self.w ** 2).sum()
        self. manual_backward(loss)
        self.w -= 0.1 * self.w.grad
