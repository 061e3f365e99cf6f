# ch07: SimpleConvNet trained by the Trainer, saved and loaded again
# (argv: epochs, train images, test images; the book: 20, 60000, 10000).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from simple_convnet import SimpleConvNet
from common.trainer import Trainer

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)

max_epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
train_num = int(sys.argv[2]) if len(sys.argv) > 2 else x_train.shape[0]
test_num = int(sys.argv[3]) if len(sys.argv) > 3 else x_test.shape[0]
x_train, t_train = x_train[:train_num], t_train[:train_num]
x_test, t_test = x_test[:test_num], t_test[:test_num]

network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01)

trainer = Trainer(network, x_train, t_train, x_test, t_test,
                  epochs=max_epochs, mini_batch_size=100,
                  optimizer='Adam', optimizer_param={'lr': 0.001},
                  evaluate_sample_num_per_epoch=1000)
trainer.train()

network.save_params("params.pkl")
print("Saved Network Parameters!")

restored = SimpleConvNet()
restored.load_params("params.pkl")
print("restored test acc:" + str(restored.accuracy(x_test, t_test)))
