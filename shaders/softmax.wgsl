// placeholder: written by the softmax work in progress
