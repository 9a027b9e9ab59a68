// Installs the Modes Lab's views in the main window.
#include "lab/modeslab.h"

#include "core/explorer.h"
#include "lab/equivalencelab.h"
#include "lab/interventionlab.h"
#include "lab/kernellab.h"
#include "lab/lenslab.h"
#include "lab/selectivitylab.h"
#include "lab/sweeplab.h"
#include "window/mainwindow.h"

namespace modeslab {

void install(MainWindow* window) {
  const LabContext c{window->document(), window->explorer()->engine()};
  window->addLab(new EquivalenceLab(c, window));
  window->addLab(new SweepLab(c, window));
  window->addLab(new KernelLab(c, window));
  window->addLab(new SelectivityLab(c, window));
  window->addLab(new InterventionLab(c, window));
  window->addLab(new LensLab(c, window));
}

}  // namespace modeslab
