# ch06: backprop against numerical differentiation through batch normalization
# (argv: images in the batch, a seed; the book: 1, none).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net_extend import MultiLayerNetExtend

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 1
if len(sys.argv) > 2:
    np.random.seed(int(sys.argv[2]))

network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                              use_batchnorm=True)

x_batch = x_train[:batch]
t_batch = t_train[:batch]

grad_backprop = network.gradient(x_batch, t_batch)
grad_numerical = network.numerical_gradient(x_batch, t_batch)

for key in grad_numerical.keys():
    diff = np.average(np.abs(grad_backprop[key] - grad_numerical[key]))
    print(key + ":" + str(diff))
