# ch04: check the hand-written gradient, then train with it (argv: iterations).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from two_layer_net import TwoLayerNet

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)

network = TwoLayerNet(input_size=784, hidden_size=10, output_size=10)
grad_numerical = network.numerical_gradient(x_train[:3], t_train[:3])
grad_backprop = network.gradient(x_train[:3], t_train[:3])
for key in ('W1', 'b1', 'W2', 'b2'):
    print(key + ":" + str(np.average(np.abs(grad_backprop[key] - grad_numerical[key]))))

iters_num = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
for i in range(iters_num):
    batch_mask = np.random.choice(x_train.shape[0], 100)
    grad = network.gradient(x_train[batch_mask], t_train[batch_mask])
    for key in ('W1', 'b1', 'W2', 'b2'):
        network.params[key] -= 0.1 * grad[key]
print("test acc:" + str(network.accuracy(x_test, t_test)))
