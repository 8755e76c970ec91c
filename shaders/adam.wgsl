// placeholder: written by the adam work in progress
