# ch07: the first layer's filters applied to a grayscale picture, one Convolution each
# (argv: the picture; the book: ../dataset/lena_gray.png and trained filters).
import sys, os
sys.path.append(os.pardir)
import numpy as np
import matplotlib.pyplot as plt
from matplotlib.image import imread
from simple_convnet import SimpleConvNet
from common.layers import Convolution

network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01)

img = imread(sys.argv[1])
img = img.reshape(1, 1, *img.shape)

fig = plt.figure()
for i in range(16):
    w = network.params['W1'][i]
    b = 0  # as the book: no bias
    w = w.reshape(1, *w.shape)
    conv_layer = Convolution(w, b)
    out = conv_layer.forward(img)
    out = out.reshape(out.shape[2], out.shape[3])
    ax = fig.add_subplot(4, 4, i + 1, xticks=[], yticks=[])
    ax.imshow(out, cmap=plt.cm.gray_r, interpolation='nearest')
    if i == 0:
        print("shape:" + str(out.shape))
        # the same filter by hand, as a check: a sum over each 5x5 window
        by_hand = np.array([[np.sum(img[0, 0, r:r + 5, c:c + 5] * w[0, 0])
                             for c in range(img.shape[3] - 4)] for r in range(img.shape[2] - 4)])
        print("max difference:" + str(np.max(np.abs(out - by_hand))))
plt.savefig("filters_applied.png")
plt.show()
