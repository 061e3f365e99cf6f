# ch06: overfitting 300 images, with or without weight decay
# (argv: weight_decay_lambda, epochs, test images, seed; the book: 0.1, 201, all, none).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net import MultiLayerNet
from common.optimizer import SGD

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
x_train = x_train[:300]
t_train = t_train[:300]

weight_decay_lambda = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
max_epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 201
test_num = int(sys.argv[3]) if len(sys.argv) > 3 else x_test.shape[0]
x_test, t_test = x_test[:test_num], t_test[:test_num]
if len(sys.argv) > 4:
    np.random.seed(int(sys.argv[4]))  # the same weights and batches with and without decay

network = MultiLayerNet(input_size=784, hidden_size_list=[100, 100, 100, 100, 100, 100],
                        output_size=10, weight_decay_lambda=weight_decay_lambda)
optimizer = SGD(lr=0.01)

train_size = x_train.shape[0]
batch_size = 100
train_acc_list = []
test_acc_list = []
iter_per_epoch = max(train_size / batch_size, 1)
epoch_cnt = 0

for i in range(1000000000):
    batch_mask = np.random.choice(train_size, batch_size)
    grads = network.gradient(x_train[batch_mask], t_train[batch_mask])
    optimizer.update(network.params, grads)

    if i % iter_per_epoch == 0:
        train_acc_list.append(network.accuracy(x_train, t_train))
        test_acc_list.append(network.accuracy(x_test, t_test))
        epoch_cnt += 1
        if epoch_cnt >= max_epochs:
            break

print("train acc:" + str(train_acc_list[-1]))
print("test acc:" + str(test_acc_list[-1]))
