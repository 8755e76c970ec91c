// placeholder: written by the batchnorm work in progress
