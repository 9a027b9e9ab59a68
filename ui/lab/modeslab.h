// The Modes Lab (docs/lab.md): its six views, docked as labs of the main window.
#pragma once

class MainWindow;

namespace modeslab {
// Creates the Equivalence, Complexity, Kernel, Selectivity, Interventions and Layer lens views
// and docks each with MainWindow::addLab (tabbed together, listed in the Labs menu).
void install(MainWindow* window);
}  // namespace modeslab
