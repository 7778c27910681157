"""Fine-tuning the retrieval network (work in progress: the losses and learned whitening
are here and tested; tuple mining, the training loop and ``imsearch train`` come next)."""
