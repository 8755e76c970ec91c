// placeholder: written by the maxpool1d work in progress
