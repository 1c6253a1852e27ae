"""The paper: layers, the generator and critic (Fig. 3), the losses (Sec. 4.2), the optimizers and
their schedule (Sec. 5), the GANimation train_step, and the one edit abstraction (`EditModel`)."""
