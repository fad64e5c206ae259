from services.intake.app import runtime

runtime.run()
