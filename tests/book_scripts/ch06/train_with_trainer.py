# ch06: the book's Trainer on MultiLayerNet with weight decay
# (argv: epochs, optimizer; the Trainer prints every step and epoch).
import sys, os
sys.path.append(os.pardir)
import numpy as np
from dataset.mnist import load_mnist
from common.multi_layer_net import MultiLayerNet
from common.trainer import Trainer

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True)
x_train, t_train = x_train[:300], t_train[:300]

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
optimizer = sys.argv[2] if len(sys.argv) > 2 else 'sgd'

network = MultiLayerNet(input_size=784, hidden_size_list=[100, 100, 100], output_size=10,
                        weight_decay_lambda=0.01)
trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=epochs,
                  mini_batch_size=100, optimizer=optimizer, optimizer_param={'lr': 0.01},
                  evaluate_sample_num_per_epoch=1000, verbose=True)
trainer.train()

print("steps:" + str(len(trainer.train_loss_list)))
print("epochs:" + str(len(trainer.train_acc_list)) + "," + str(len(trainer.test_acc_list)))
