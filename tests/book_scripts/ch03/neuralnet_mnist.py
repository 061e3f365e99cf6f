# MNIST test accuracy of a three-layer sigmoid network whose weights are read from the
# pickle sample_weight.pkl beside this script, with pickle.load (book ch03: a dict of
# float32 arrays W1, b1 .. W3, b3). argv: how many test images (the book: all 10,000).
import sys, os
sys.path.append(os.pardir)
import pickle
import numpy as np
from dataset.mnist import load_mnist
from common.functions import sigmoid, softmax

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, flatten=True,
                                                  one_hot_label=False)
count = int(sys.argv[1]) if len(sys.argv) > 1 else len(x_test)

with open("sample_weight.pkl", "rb") as f:
    network = pickle.load(f)

hidden = x_test[:count]
for n in (1, 2):
    hidden = sigmoid(np.dot(hidden, network["W" + str(n)]) + network["b" + str(n)])
y = softmax(np.dot(hidden, network["W3"]) + network["b3"])
print("Accuracy:" + str(np.mean(np.argmax(y, axis=1) == t_test[:count])))
