# A tiny run for tests and demos: 56px inputs, 2 lrs, 2 epochs, small batches, subsets allowed.
# The numbers it gives say protocol=modified / subset=True: they are not the published protocol.
_base_ = ['./_base_/probe_recipe.py']

image_size = 56
data = dict(allow_subset=True, heldout_per_class=1, workers=0)
probe = dict(lrs=[0.1, 1.0])
train = dict(epochs=2, batch_size=8, eval_batch_size=16)
cache = dict(epochs=2, batch_size=8, knn_k=3, logreg_max_iter=200)
runtime = dict(device='cpu', progress=False)
