# ch06: overfitting 300 images with a deep net, with or without dropout
# (argv: dropout ratio (0: none), epochs, test images, seed; the book: 0.2, 301, all, none).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net_extend import MultiLayerNetExtend
from common.trainer import Trainer

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
x_train = x_train[:300]
t_train = t_train[:300]

dropout_ratio = float(sys.argv[1]) if len(sys.argv) > 1 else 0.2
max_epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 301
test_num = int(sys.argv[3]) if len(sys.argv) > 3 else x_test.shape[0]
x_test, t_test = x_test[:test_num], t_test[:test_num]
if len(sys.argv) > 4:
    np.random.seed(int(sys.argv[4]))

network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100, 100, 100, 100, 100],
                              output_size=10, use_dropout=dropout_ratio > 0,
                              dropout_ration=dropout_ratio)
trainer = Trainer(network, x_train, t_train, x_test, t_test,
                  epochs=max_epochs, mini_batch_size=100,
                  optimizer='sgd', optimizer_param={'lr': 0.01}, verbose=False)
trainer.train()

print("layers:" + ",".join(network.layers.keys()))
print("train acc:" + str(trainer.train_acc_list[-1]))
print("test acc:" + str(trainer.test_acc_list[-1]))
