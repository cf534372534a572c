"""PyTorch re-creation of the official STEP modules (UttaranB127/STEP), float32, CPU. Bench-only (needs torch).

Written from /work/shared/spec/STEP_REFERENCE.md sections 3, 4.1, 4.2 and 5.1; state_dict keys are the official ones,
so the shipped checkpoints (as npz) load with ``load_npz_state_dict`` (checked by ``bench/check_reference.py``).

* ``Classifier``: ``classifier_stgcn_real_only/net/classifier.py`` (data_bn(48), st_gcn 3->32 s1, 32->64 s2, 64->64 s1,
  kernel 75, edge importance, avg pool, fcn 1x1, softmax on output: the double-softmax bug is kept).
* ``CVAE``: ``generator_cvae/net/CVAE_stgcn.py`` (encoder st_gcn, decoder st_gctn with ConvTranspose2d).
* ``between_frame_loss``: ``generator_cvae/utils/losses.py`` as a literal Python loop of per-frame / per-scalar
  ``F.mse_loss`` calls (~58k calls at N=8, T=75), ``vae_loss`` = that + summed KL.
* ``weights_init``: N(0, 0.02) for Conv1d/Conv2d (not ConvTranspose2d), BN weight N(1, 0.02).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The spec (section 9): with mkldnn on, the oneDNN Conv2d backward crashes for a 75-tap kernel on a T=38 input.
torch.backends.mkldnn.enabled = False


# ----------------------------------------------------------------------------- graph

def official_adjacency() -> np.ndarray:
    """The registered ``A`` buffer (3, 16, 16) float32 of the official Graph(strategy='spatial')."""
    from stepjax import skeleton
    return np.asarray(skeleton.spatial_adjacency(official=True), np.float32)


# ----------------------------------------------------------------------------- blocks (section 3)

class ConvTemporalGraphical(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, t_kernel_size=1, t_stride=1, t_padding=0,
                 t_dilation=1, bias=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels * kernel_size, kernel_size=(t_kernel_size, 1),
                              padding=(t_padding, 0), stride=(t_stride, 1), dilation=(t_dilation, 1), bias=bias)

    def forward(self, x, A):
        assert A.size(0) == self.kernel_size
        x = self.conv(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.kernel_size, kc // self.kernel_size, t, v)
        x = torch.einsum('nkctv,kvw->nctw', (x, A))
        return x.contiguous(), A


class ConvTransposeTemporalGraphical(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, t_kernel_size=1, t_stride=1, t_padding=0,
                 t_outpadding=0, t_dilation=1, bias=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.ConvTranspose2d(in_channels, out_channels * kernel_size, kernel_size=(t_kernel_size, 1),
                                       padding=(t_padding, 0), output_padding=(t_outpadding, 0),
                                       stride=(t_stride, 1), dilation=(t_dilation, 1), bias=bias)

    def forward(self, x, A):
        assert A.size(0) == self.kernel_size
        x = self.conv(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.kernel_size, kc // self.kernel_size, t, v)
        x = torch.einsum('nkctv,kvw->nctw', (x, A))
        return x.contiguous(), A


class st_gcn(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dropout=0, residual=True):
        super().__init__()
        assert len(kernel_size) == 2 and kernel_size[0] % 2 == 1
        padding = ((kernel_size[0] - 1) // 2, 0)
        self.gcn = ConvTemporalGraphical(in_channels, out_channels, kernel_size[1])
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (kernel_size[0], 1), (stride, 1), padding),
            nn.BatchNorm2d(out_channels), nn.Dropout(dropout, inplace=True))
        if not residual:
            self.residual = lambda x: 0
        elif (in_channels == out_channels) and (stride == 1):
            self.residual = lambda x: x
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                                          nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x, A):
        res = self.residual(x)
        x, A = self.gcn(x, A)
        x = self.tcn(x) + res
        return self.relu(x), A


class st_gctn(nn.Module):
    """The decoder block: ConvTranspose2d in the graph conv, the temporal conv and the residual projection."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dropout=0, residual=True):
        super().__init__()
        padding = ((kernel_size[0] - 1) // 2, 0)
        self.gctn = ConvTransposeTemporalGraphical(in_channels, out_channels, kernel_size[1])
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(out_channels, out_channels, (kernel_size[0], 1), (stride, 1), padding),
            nn.BatchNorm2d(out_channels), nn.Dropout(dropout, inplace=True))
        if not residual:
            self.residual = lambda x: 0
        elif (in_channels == out_channels) and (stride == 1):
            self.residual = lambda x: x
        else:
            self.residual = nn.Sequential(
                nn.ConvTranspose2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x, A):
        res = self.residual(x)
        x, A = self.gctn(x, A)
        x = self.tcn(x) + res
        return self.relu(x), A


# ----------------------------------------------------------------------------- classifier (section 5.1)

class Classifier(nn.Module):
    """Official real_only classifier; ``forward`` returns ``(softmax(fcn(f)), f)``."""

    def __init__(self, in_channels=3, num_class=4, temporal_kernel_size=75, edge_importance_weighting=True):
        super().__init__()
        A = torch.tensor(official_adjacency(), dtype=torch.float32, requires_grad=False)
        self.register_buffer('A', A)
        spatial_kernel_size = A.size(0)
        kernel_size = (temporal_kernel_size, spatial_kernel_size)
        self.data_bn = nn.BatchNorm1d(in_channels * A.size(1))
        self.st_gcn_networks = nn.ModuleList((
            st_gcn(in_channels, 32, kernel_size, 1),
            st_gcn(32, 64, kernel_size, 2),
            st_gcn(64, 64, kernel_size, 1),
        ))
        if edge_importance_weighting:
            self.edge_importance = nn.ParameterList([nn.Parameter(torch.ones(self.A.size()))
                                                     for _ in self.st_gcn_networks])
        else:
            self.edge_importance = [1] * len(self.st_gcn_networks)
        self.fcn = nn.Conv2d(64, num_class, kernel_size=1)
        self.pre_softmax = None

    def forward(self, x):
        N, C, T, V, M = x.size()
        x = x.permute(0, 4, 3, 1, 2).contiguous().view(N * M, V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
        for gcn, importance in zip(self.st_gcn_networks, self.edge_importance):
            x, _ = gcn(x, self.A * importance)
        x = F.avg_pool2d(x, x.size()[2:])
        x = x.view(N, M, -1, 1, 1).mean(dim=1)
        f = x.squeeze()
        x = self.fcn(x)
        x = x.view(x.size(0), -1)
        self.pre_softmax = x
        return F.softmax(x, dim=1), f


# ----------------------------------------------------------------------------- CVAE (section 4.1)

class Encoder(nn.Module):
    def __init__(self, in_channels, n_z, num_classes, temporal_kernel_size=75):
        super().__init__()
        A = torch.tensor(official_adjacency(), dtype=torch.float32, requires_grad=False)
        self.register_buffer('A', A)
        kernel_size = (temporal_kernel_size, A.size(0))
        self.data_bn = nn.BatchNorm1d((in_channels + num_classes) * A.size(1))
        self.encoder = nn.ModuleList((
            st_gcn(in_channels + num_classes, 64, kernel_size, 1),
            st_gcn(64, 32, kernel_size, 1),
            st_gcn(32, 32, kernel_size, 1),
        ))
        self.z_mean = nn.Conv2d(32, n_z, kernel_size=1)
        self.z_lsig = nn.Conv2d(32, n_z, kernel_size=1)

    def forward(self, x, l):
        N, C, T, V, M = x.size()
        lab = l.view(N, -1, 1, 1, 1).expand(N, l.size(1), T, V, M)
        x = torch.cat((x, lab), dim=1)
        C = x.size(1)
        x = x.permute(0, 4, 3, 1, 2).contiguous().view(N * M, V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
        for gcn in self.encoder:
            x, _ = gcn(x, self.A)
        x = F.avg_pool2d(x, x.size()[2:])
        x = x.view(N, M, -1, 1, 1).mean(dim=1)
        mean = self.z_mean(x).view(N, -1)
        lsig = self.z_lsig(x).view(N, -1)
        return mean, lsig


class Decoder(nn.Module):
    def __init__(self, out_channels, n_z, num_classes, temporal_kernel_size=75):
        super().__init__()
        A = torch.tensor(official_adjacency(), dtype=torch.float32, requires_grad=False)
        self.register_buffer('A', A)
        kernel_size = (temporal_kernel_size, A.size(0))
        self.fcn = nn.ConvTranspose2d(n_z + num_classes, n_z, kernel_size=1)
        self.decoder = nn.ModuleList((
            st_gctn(n_z, 32, kernel_size, 1),
            st_gctn(32, 64, kernel_size, 1),
            st_gctn(64, out_channels, kernel_size, 1),
        ))
        self.data_bn = nn.BatchNorm1d(out_channels * A.size(1))

    def forward(self, z, l, T, V):
        N = z.size(0)
        z = torch.cat((z, l), dim=1).view(N, -1, 1, 1)
        z = self.fcn(z)
        z = z.repeat([1, 1, T, V])
        for gcn in self.decoder:
            z, _ = gcn(z, self.A)
        C = z.size(1)
        z = z.permute(0, 3, 1, 2).contiguous().view(N, V * C, T)
        z = self.data_bn(z)
        z = z.view(N, V, C, T).permute(0, 2, 3, 1).contiguous()
        return z.unsqueeze(4)  # (N, C, T, V, 1)


class CVAE(nn.Module):
    def __init__(self, in_channels=3, T=75, V=16, n_z=32, num_classes=4, temporal_kernel_size=75):
        super().__init__()
        self.T, self.V, self.n_z = T, V, n_z
        self.encoder = Encoder(in_channels, n_z, num_classes, temporal_kernel_size)
        self.decoder = Decoder(in_channels, n_z, num_classes, temporal_kernel_size)

    def forward(self, x, lenc, ldec):
        mean, lsig = self.encoder(x, lenc)
        sig = torch.exp(0.5 * lsig)
        eps = torch.randn_like(sig)
        z = eps * sig + mean
        return self.decoder(z, ldec, self.T, self.V), mean, lsig, z


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv1d') != -1 or classname.find('Conv2d') != -1:  # ConvTranspose2d does NOT match
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            m.bias.data.fill_(0)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


# ----------------------------------------------------------------------------- losses (section 4.2)

def between_frame_loss(gait1, gait2):
    """Official ``between_frame_loss`` as a literal Python loop of ``F.mse_loss`` calls.

    gait1/gait2: (N, C, T, V, 1) -> (N, T, V*C) joint-major. Returns
    ``mse(g1, g2) + sum_{n,t,a} mse(g1[t]-g1[a], g2[t]-g2[a])`` (a in first/middle/last frames, per frame of 48)
    ``+ sum_{n,t>=1,f} mse(vel1, vel2) + sum_{n,t>=2,f} mse(acc1, acc2)`` (per scalar).
    """
    N, C, T, V, _ = gait1.shape
    g1 = gait1.permute(0, 2, 3, 1, 4).contiguous().view(N, T, V * C)
    g2 = gait2.permute(0, 2, 3, 1, 4).contiguous().view(N, T, V * C)
    num_f = V * C
    mid = int(T / 2) - 1
    anchors = (0, mid, T - 1)
    loss = F.mse_loss(g1, g2)
    for n in range(N):
        for t in range(T):
            for a in anchors:
                loss = loss + F.mse_loss(g1[n, t] - g1[n, a], g2[n, t] - g2[n, a])
    for n in range(N):
        for t in range(1, T):
            for f in range(num_f):
                loss = loss + F.mse_loss(g1[n, t, f] - g1[n, t - 1, f], g2[n, t, f] - g2[n, t - 1, f])
    for n in range(N):
        for t in range(2, T):
            for f in range(num_f):
                loss = loss + F.mse_loss(g1[n, t, f] - 2 * g1[n, t - 1, f] + g1[n, t - 2, f],
                                         g2[n, t, f] - 2 * g2[n, t - 1, f] + g2[n, t - 2, f])
    return loss


def vae_loss(x_in, x_out, mean, lsig, beta=1.0):
    kld = -0.5 * torch.sum(1 + lsig - mean.pow(2) - lsig.exp())
    return between_frame_loss(x_in, x_out) + beta * kld


# ----------------------------------------------------------------------------- checkpoints

def load_npz_state_dict(module: nn.Module, path: str, prefix_strip: str = "") -> None:
    """Loads an official state_dict stored as npz (original keys) into ``module`` (strict)."""
    data = np.load(path)
    sd = {}
    for k in data.files:
        key = k[len(prefix_strip):] if prefix_strip and k.startswith(prefix_strip) else k
        v = torch.from_numpy(np.array(data[k]))
        sd[key] = v
    module.load_state_dict(sd, strict=True)
