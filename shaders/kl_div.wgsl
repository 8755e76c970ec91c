// placeholder: written by the kl_div work in progress
