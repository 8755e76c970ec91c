// placeholder: written by the conv1d work in progress
