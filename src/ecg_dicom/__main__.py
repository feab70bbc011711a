from ecg_dicom.cli import main

raise SystemExit(main())
