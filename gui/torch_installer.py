"""Plugins ▸ stfusion ▸ Install PyTorch…: pip in a background task, with progress and cancel.

The rules (which Python, which build, which folder, the pip command) are in
``core.torch_install``; this module asks the user, runs the plan as a QgsTask and reports
the outcome: pip's own output when it fails.
"""
from typing import Callable, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask

from ..core import torch_install

LOG_TAG = "stfusion"


class TorchInstallTask(QgsTask):
    """Runs an ``InstallPlan``; ``on_done(task)`` runs on the main thread when it ends
    (``task.error`` is '' on success, else pip's output or the reason)."""

    def __init__(self, plan: torch_install.InstallPlan,
                 on_done: Optional[Callable[["TorchInstallTask"], None]] = None,
                 constraints: Optional[str] = None):
        super().__init__(QgsApplication.translate("stfusion", "stfusion: installing PyTorch"),
                         QgsTask.CanCancel)
        self.plan, self.on_done, self.constraints = plan, on_done, constraints
        self.output = self.error = ""

    def run(self) -> bool:
        try:
            self.output = torch_install.run_pip(
                self.plan, lambda fraction: self.setProgress(100.0 * fraction),
                self.isCanceled, self.constraints)
        except torch_install.InstallError as exc:
            self.error = str(exc)
            return False
        return True

    def finished(self, result: bool) -> None:
        if result:
            torch_install.add_to_sys_path(self.plan.target)
        if self.on_done is not None:
            self.on_done(self)


def tr(text: str) -> str:
    return QgsApplication.translate("stfusion", text)


class TorchInstaller:
    """The menu action's logic: confirm, start the task, report the outcome."""

    def __init__(self, iface):
        self.iface = iface
        self.task: Optional[TorchInstallTask] = None

    def ask_and_install(self) -> None:
        from qgis.PyQt.QtWidgets import QMessageBox
        try:
            plan = torch_install.torch_plan(QgsApplication.qgisSettingsDirPath())
        except torch_install.InstallError as exc:
            self.report_failure(str(exc))
            return
        build = tr("CUDA build: an NVIDIA GPU was found") if plan.cuda else tr("CPU build")
        question = tr("Install {requirement} ({build}) for QGIS's Python\n{python}\ninto the "
                      "plugin's own folder\n{target}?\n\nIt downloads a few hundred MB (CUDA: "
                      "a few GB) and leaves QGIS's numpy and GDAL untouched.").format(
            requirement=" ".join(plan.requirements), build=build, python=plan.python,
            target=plan.target)
        answer = QMessageBox.question(self.iface.mainWindow(), tr("Install PyTorch"), question)
        if answer == QMessageBox.Yes:
            self.start(plan)

    def start(self, plan: torch_install.InstallPlan) -> TorchInstallTask:
        self.task = TorchInstallTask(plan, self.done)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def done(self, task: TorchInstallTask) -> None:
        QgsMessageLog.logMessage(" ".join(task.plan.command()) + "\n" + task.output
                                 + task.error, LOG_TAG,
                                 Qgis.Success if not task.error else Qgis.Critical)
        if task.error:
            self.report_failure(task.error)
        elif self.iface is not None:
            self.iface.messageBar().pushSuccess(
                "stfusion", tr("PyTorch installed in {target}; the stfusion algorithms can "
                               "run now.").format(target=task.plan.target))
        self.task = None

    def report_failure(self, error: str) -> None:
        QgsMessageLog.logMessage(error, LOG_TAG, Qgis.Critical)
        if self.iface is not None:
            self.iface.messageBar().pushMessage(
                "stfusion", tr("PyTorch was not installed: {first_line}").format(
                    first_line=error.strip().splitlines()[-1] if error.strip() else ""),
                error, Qgis.Critical, 0)
